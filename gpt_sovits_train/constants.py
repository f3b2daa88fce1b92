"""The rates and widths of the GPT-SoVITS v2 pipeline, defined once (every layer may import this; it imports
nothing).

Audio is 32 kHz for SoVITS; the SSL model (HuBERT) hears 16 kHz and emits 50 Hz frames, i.e. one frame per
``HOP`` = 640 samples at 32 kHz, the same hop as the linear spectrogram. The semantic tokens the GPT models are
those frames halved to 25 Hz: one token per 1280 samples. Text carries 1024-d BERT features per phoneme.
"""

SAMPLE_RATE = 32000  # SoVITS waveform rate (Hz)
SSL_SAMPLE_RATE = 16000  # what the SSL extractor (HuBERT) hears (Hz)
SPEAKER_SAMPLE_RATE = 16000  # what the speaker encoder (ECAPA) hears (Hz)
HOP = 640  # samples at SAMPLE_RATE per spectrogram / SSL frame (50 Hz)
SEMANTIC_HZ = 25  # semantic tokens per second (the GPT stage's rate)
SAMPLES_PER_TOKEN = SAMPLE_RATE // SEMANTIC_HZ  # 1280
BERT_DIM = 1024  # width of the per-phoneme BERT features
SSL_DIM = 768  # width of the SSL (HuBERT) features
SEMANTIC_CODEBOOK = 1024  # semantic code ids 0..1023
SEMANTIC_EOS = SEMANTIC_CODEBOOK  # the GPT's end-of-sequence id (its vocabulary is codes + EOS)

# The duration policy, end to end: gst-prepare keeps clips up to MAX_CLIP_SECONDS (after trimming) whose transcripts
# have at most MAX_PHONES_PER_SECOND phones per second, and both training stages derive their per-item length caps
# from the same two numbers, so nothing prepare writes is left out of training by default (v2 itself trains SoVITS
# on clips up to 54 s). A lower cap set on purpose (batching.max_item_length, e.g. on a small GPU) is counted and
# reported every epoch.
MAX_CLIP_SECONDS = 30.0
MAX_PHONES_PER_SECOND = 30.0
