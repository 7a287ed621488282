#!/bin/sh
# Stand-in for a maintenance sweep: most ticks find nothing to do (exit 100,
# orderly's no-op code), a few do work (print a summary line, exit 0). The
# share that does work is ORDERLY_DEMO_WORK_PERCENT (default 5).
set -eu
name=$1
percent=${ORDERLY_DEMO_WORK_PERCENT:-5}
roll=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
if [ $((roll % 100)) -lt "$percent" ]; then
  echo "$name${GC_RIG:+ on $GC_RIG}: closed $((roll % 3 + 1)) item(s)"
  exit 0
fi
exit 100
