"""Data: corpora (embedded default, WikiText, your own text files), tokenizers, the on-disk token cache, LM windows
and the MQAR recall task."""
