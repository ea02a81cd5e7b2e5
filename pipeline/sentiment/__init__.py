"""IMDb review sentiment: the tokenizer and vocabulary, the LSTM classifier, what it is
pretrained from (PPMI-SVD word vectors), scoring and serving."""
