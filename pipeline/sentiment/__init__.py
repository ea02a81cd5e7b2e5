"""IMDb review sentiment: the tokenizer and vocabulary, the LSTM classifier, what it is
pretrained from (PPMI-SVD word vectors or a word language model), scoring and serving."""
