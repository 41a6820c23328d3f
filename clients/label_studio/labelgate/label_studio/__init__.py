"""A Label Studio ML backend that gets SAM 2 / SAM 3 masks and Grounding DINO boxes from labelgate.

Label Studio connects to it like to any ML backend (project settings -> Model -> Connect Model).
It speaks the ML backend HTTP protocol (`/predict`, `/setup`, `/webhook`, `/health`, `/metrics`),
downloads task images from Label Studio, and calls a labelgate server over gRPC:

- interactive mode (clicks, boxes, a TextArea prompt): `brushlabels` masks, `rectanglelabels` boxes
  and optionally `polygonlabels`; further clicks refine the previous mask;
- batch mode ("Retrieve predictions"): Grounding DINO + SAM 2 with the project's labels as caption;
- with a concept model (SAM 3): every instance of a text prompt, of the labels in a batch, or of
  the objects like exemplar boxes.

Run it with `labelgate-label-studio` (see `cli.py`).
"""
