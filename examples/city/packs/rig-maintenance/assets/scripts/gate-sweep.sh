#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" gate-sweep
