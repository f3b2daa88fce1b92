"""Small random-initialized feature models, FOR DEMOS AND TESTS ONLY.

No pretrained weights can be downloaded in CI or in ``make demo``, yet the extractors must run the real code
path (load a folder with ``from_pretrained``/``load_state_dict``, run the real network). These helpers save
models of the same classes as the real ones, with real output sizes (HuBERT 768, BERT 1024, ECAPA 192) but
few layers and random weights, into folders the extractors load by path. Their outputs are meaningless as
features; never train a model you intend to use on them.

    python -m gpt_sovits_train.features.random_init artifacts/random_models
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from encodec.quantization import ResidualVectorQuantizer
from transformers import BertConfig, BertForMaskedLM, BertTokenizer, HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from gpt_sovits_train.constants import BERT_DIM, SSL_SAMPLE_RATE
from gpt_sovits_train.features import codec, speaker

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Enough characters for the demo corpus; anything else becomes [UNK], still one token per character.
DEFAULT_CHARACTERS = (
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多"
    "天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但"
    "身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四"
    "第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通"
    "目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物"
    "台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远"
    "资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江"
    "语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据"
    "导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切布装乎跑散步窗户闷床班饺吃费图馆春树钥匙"
    "办室盏灯菜尤川宁静速非常块必须完成件给年怎么样场别错量剩百分之周末打吧使用多老师今作业天气公园遍意思站约公里"
    "，。！？、；：“”‘’（）《》…—·,.!?;:'\"()-"
)


def make_hubert(folder: Path, num_layers: int = 2) -> Path:
    """HuBERT with v2's 768-d output and 320-sample hop, ``num_layers`` transformer layers."""
    config = HubertConfig(
        hidden_size=768,
        num_hidden_layers=num_layers,
        num_attention_heads=12,
        intermediate_size=1024,
        conv_dim=(256, 256, 256, 256, 256, 256, 256),
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=16,
    )
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SSL_SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(folder)
    return folder


def make_chinese_bert(folder: Path, num_layers: int = 3, characters: str = DEFAULT_CHARACTERS) -> Path:
    """BERT masked LM with v2's 1024-d hidden size, a character vocabulary and ``num_layers`` layers."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys([*SPECIAL_TOKENS, *characters]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=BERT_DIM,
        num_hidden_layers=num_layers,
        num_attention_heads=16,
        intermediate_size=1024,
        max_position_embeddings=512,
    )
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def make_ecapa(folder: Path, channels: int = 128) -> Path:
    """ECAPA-TDNN with the 192-d embedding of spkrec-ecapa-voxceleb and narrow hidden channels."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"channels": [channels, channels, channels, channels, 3 * channels], "attention_channels": 32}
    torch.save(speaker.build_ecapa(config).state_dict(), folder / speaker.CHECKPOINT_NAME)
    (folder / speaker.CONFIG_NAME).write_text(json.dumps(config))
    return folder


def make_encodec(folder: Path, bandwidth: float = 1.5) -> Path:
    """EnCodec 24 kHz with random weights (the architecture has no size knob; ~15 M weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(codec.build_encodec(24000).state_dict(), folder / codec.STATE_NAME)
    (folder / codec.CONFIG_NAME).write_text(json.dumps({"sample_rate": 24000, "bandwidth": bandwidth}))
    return folder


class RandomSemanticQuantizer(torch.nn.Module):
    """v2's ``extract_latent`` structure with random weights, for demos and tests until a SoVITS model exists.

    v2 projects SSL with a kernel-2, stride-2 convolution (50 Hz → 25 Hz) and encodes it with a one-codebook
    residual VQ of 1024 entries (its quantizer derives from EnCodec's). This uses EnCodec's RVQ class itself
    with a random (not k-means) codebook; wrap it in ``features.semantic.LatentCodeExtractor``.
    """

    def __init__(self, ssl_dim: int = 768, bins: int = 1024, seed: int = 0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the same codes in prepare and in every loader worker
        self.ssl_proj = torch.nn.Conv1d(ssl_dim, ssl_dim, kernel_size=2, stride=2)
        self.quantizer = ResidualVectorQuantizer(dimension=ssl_dim, n_q=1, bins=bins, kmeans_init=False)
        torch.random.set_rng_state(generator_state)
        self.eval()

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """``ssl [B, 768, T]`` → codes ``[B, 1, T // 2]``."""
        codes = self.quantizer.vq.encode(self.ssl_proj(ssl), n_q=1)  # [n_q, B, T/2]
        return codes.transpose(0, 1)


def make_all(root: str | Path, seed: int = 0, with_encodec: bool = False) -> dict[str, Path]:
    """Create every random model under ``root``; returns ``{"ssl", "bert", "speaker"[, "codec"]}`` folders."""
    root = Path(root)
    torch.manual_seed(seed)
    folders = {
        "ssl": make_hubert(root / "hubert"),
        "bert": make_chinese_bert(root / "chinese_bert"),
        "speaker": make_ecapa(root / "ecapa"),
    }
    if with_encodec:
        folders["codec"] = make_encodec(root / "encodec")
    (root / "README.txt").write_text("Random-initialized models for demos and tests only. Not usable features.\n")
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description="Create random-init feature models (demos and tests only).")
    parser.add_argument("root", type=Path)
    parser.add_argument("--encodec", action="store_true")
    args = parser.parse_args()
    for name, folder in make_all(args.root, with_encodec=args.encodec).items():
        print(f"{name}: {folder}")


if __name__ == "__main__":
    main()
