"""``gst-clone``: compose ``conf/clone.yaml`` with command-line overrides and run the cloning workflow.

Examples::

    gst-clone voice_name=alice 'inputs=[alice.wav]' pretrained.gpt=s1.ckpt pretrained.sovits=s2G.pth
    gst-clone voice_name=alice restart_from=prepare    # after editing voices/alice/transcripts.list
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="clone")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.clone.workflow import run_clone

    run_clone(cfg)


if __name__ == "__main__":
    main()
