"""Labeling a whole dataset from a text ontology (`labelgate label`): a resumable job against one
server or a fleet, its manifest, and the exporters that write COCO, YOLO, Label Studio and CVAT files."""
