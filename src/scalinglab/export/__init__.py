"""Export of trained runs: Hugging Face `transformers` folders (GPT) and ONNX (GPT and RNNs).

Needs the optional extra: `pip install 'scalinglab[export]'`.
"""
