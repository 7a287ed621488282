#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" cross-rig-deps
