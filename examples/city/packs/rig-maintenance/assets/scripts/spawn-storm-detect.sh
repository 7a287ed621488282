#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" spawn-storm-detect
