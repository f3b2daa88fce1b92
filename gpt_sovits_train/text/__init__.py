"""Text layer (bottom): normalization, language segmentation, G2P and the v2 phone table; imports only ``constants``.

Entry points: :func:`gpt_sovits_train.text.frontend.phonemize` (text -> phones, ids, word2ph),
:func:`gpt_sovits_train.text.frontend.split_sentences` and :mod:`gpt_sovits_train.text.symbols`.
Import ``frontend`` explicitly; this package module stays light so ``symbols`` loads without jieba/pyopenjtalk.
"""
