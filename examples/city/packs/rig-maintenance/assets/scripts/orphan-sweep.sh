#!/bin/sh
exec "$PACK_DIR/../../lib/sweep.sh" orphan-sweep
