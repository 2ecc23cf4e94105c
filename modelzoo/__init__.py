"""deeprec's model zoo: DeepRec's recommendation models as `train.py` scripts.

`modelzoo.data` generates and reads the data sets, `modelzoo.common` holds
what every model shares (flags, feature columns, training loop, evaluation,
export), and each model has a folder with `model.py` and `train.py`.
"""
