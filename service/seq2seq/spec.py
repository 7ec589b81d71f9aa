"""What model.yaml says about a seq2seq model's graphs and generation defaults: defined with
the rest of the format in service.model_format, and named here for the generation loop."""

from service.model_format import Generation, Seq2SeqSpec

__all__ = ["Generation", "Seq2SeqSpec"]
