#!/usr/bin/env bash
# Prepare the bundled demo corpus (data/demo) into WebDataset shards with random-init extractors.
# The random models are FOR DEMOS AND TESTS ONLY (no pretrained weights can be downloaded here); with real
# models use conf/prepare/features/pretrained.yaml instead. Idempotent: an existing dataset is kept unless FORCE=1.
#   DEMO_DIR=artifacts/demo bash scripts/prepare_demo.sh [extra Hydra overrides]
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-artifacts/demo}
PY=${PY:-python}
MODELS="$DEMO_DIR/random_models"
SHARDS="$DEMO_DIR/shards"

if [ -f "$SHARDS/manifest.json" ] && [ "${FORCE:-0}" != "1" ]; then
  echo "demo shards already prepared in $SHARDS (FORCE=1 to rebuild)"
  exit 0
fi
if [ ! -f "$MODELS/README.txt" ]; then
  "$PY" -m gpt_sovits_train.features.random_init "$MODELS"
fi
"$PY" -m gpt_sovits_train.cli.prepare \
  input.path=data/demo/demo.list \
  output_dir="$SHARDS" \
  prepare/features@features=random_init \
  random_models="$MODELS" \
  hydra.run.dir="$DEMO_DIR/logs/prepare" \
  overwrite=true \
  "$@"
