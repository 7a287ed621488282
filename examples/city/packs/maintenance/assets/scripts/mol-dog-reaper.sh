#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" mol-dog-reaper
