#!/usr/bin/env bash
# `make demo`: the whole pipeline on the bundled demo corpus, CPU-friendly, no downloads.
#   1. prepare data/demo into WebDataset shards (random-init HuBERT/BERT/ECAPA: no pretrained weights here)
#   2. train the SoVITS stage briefly (tiny generator)
#   3. train the GPT stage briefly on semantic tokens from that SoVITS model's quantizer (as v2 does)
#   4. synthesize a sentence from a demo reference clip; the wav carries AI-generated metadata
# With real models swap conf/prepare/features/random_init for `pretrained` and use experiment=v2_finetune_*.
set -euo pipefail
export DEMO_DIR=${DEMO_DIR:-artifacts/demo}
export WANDB_MODE=${WANDB_MODE:-offline}
PY=${PY:-.venv/bin/python}
MODELS="$DEMO_DIR/random_models"
RUNS="$DEMO_DIR/runs"

echo "== 1/4 prepare: data/demo -> $DEMO_DIR/shards"
# no stored semantic ids: the GPT stage takes them from the trained SoVITS quantizer (step 3)
PY=$PY bash scripts/prepare_demo.sh features.semantic=null

last_checkpoint() {  # train_result.json names the run's last checkpoint
  "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['last_checkpoint'])" "$1/train_result.json"
}

echo "== 2/4 train SoVITS (experiment=demo_sovits)"
"$PY" -m gpt_sovits_train.cli.train experiment=demo_sovits hydra.run.dir="$RUNS/sovits" "$@"
SOVITS_CKPT=$(last_checkpoint "$RUNS/sovits")

echo "== 3/4 train GPT (experiment=demo_gpt) on codes of $SOVITS_CKPT"
"$PY" -m gpt_sovits_train.cli.train experiment=demo_gpt hydra.run.dir="$RUNS/gpt" \
  "data.semantic_extractor={_target_: gpt_sovits_train.features.semantic.LatentCodeExtractor, model: {_target_: gpt_sovits_train.inference.loading.build_network, net_cfg: null, checkpoint: '$SOVITS_CKPT', kind: sovits}}" \
  "$@"
GPT_CKPT=$(last_checkpoint "$RUNS/gpt")

echo "== 4/4 synthesize"
REF_AUDIO=data/demo/ava/ava_000.flac
REF_TEXT=$(grep '^ava/ava_000.flac|' data/demo/demo.list | cut -d'|' -f4)
"$PY" -m gpt_sovits_train.cli.synthesize \
  prepare/features@features=random_init random_models="$MODELS" \
  gpt.checkpoint="$GPT_CKPT" sovits.checkpoint="$SOVITS_CKPT" \
  reference.audio="$REF_AUDIO" "reference.text='$REF_TEXT'" reference.language=en \
  "text='我今天买了3个苹果, and it costs 5 dollars.'" language=auto \
  output="$DEMO_DIR/demo.wav" hydra.run.dir="$DEMO_DIR/logs/synthesize"
echo "demo finished: $DEMO_DIR/demo.wav (the networks are tiny and trained for a minute: expect noise, not speech)"
