"""CVAT on top of labelgate, with no model code of its own.

- `labelgate_cvat.nuclio`: the handlers of the nuclio functions in clients/cvat/nuclio/
  (a SAM 2 interactor, and a Grounding DINO and a SAM 3 detector, for CVAT's lambda manager).
- `labelgate_cvat.detection_function` and `labelgate_cvat.interaction_function`: cvat-sdk
  auto-annotation functions for `cvat-cli ... --function-module`.
- `labelgate_cvat.prompts` and `labelgate_cvat.detections`: what both share (CVAT prompts ->
  labelgate calls, Grounding DINO phrases or SAM 3 concepts -> CVAT labels, masks -> CVAT shapes).

The labelgate server is named by LABELGATE_SERVER (plus LABELGATE_AUTH_TOKEN and LABELGATE_TLS_CA
when it needs them), read by `labelgate.client.Client.from_env`.
"""
