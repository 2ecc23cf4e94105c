"""Warmup: replaying a version's recorded requests before it serves.

TensorFlow Serving's convention: `<version>/assets.extra/tf_serving_warmup_requests`
is a TFRecord file of `PredictionLog`s; each record's request (Predict,
Classify or Regress) runs once against the new version, so the first real
requests do not pay for graph pruning, kernel set-up and cold caches. The
request's model name and version are ignored (the version being loaded
answers). A failing record fails the load, and the old version keeps serving.
"""

from __future__ import annotations

import os

from tensorflow.python.lib.io import tf_record
from tensorflow_serving.apis import prediction_log_pb2

from deeprec.serving.model_server import prediction
from deeprec.serving.model_server.servable import Servable

__all__ = ["MAX_WARMUP_RECORDS", "WARMUP_FILE", "run_warmup"]

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TensorFlow Serving's limit: warmup must stay short


def run_warmup(servable: Servable) -> int:
    """Replays the version's warmup records, if it has any; returns how many.

    Raises:
      ValueError: a record is not a PredictionLog of a supported request, or
        there are more than MAX_WARMUP_RECORDS.
      ServingError: a replayed request failed.
    """
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    count = 0
    for record in tf_record.tf_record_iterator(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(f"{path} has more than {MAX_WARMUP_RECORDS} warmup records")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            prediction.predict(servable, log.predict_log.request)
        elif kind == "classify_log":
            prediction.classify(servable, log.classify_log.request)
        elif kind == "regress_log":
            prediction.regress(servable, log.regress_log.request)
        else:
            raise ValueError(f"{path} record {count}: warmup of {kind or 'an empty log'} "
                             "is not supported (only predict_log, classify_log, regress_log)")
    return count
