"""The trainers' loop: the review queue and its signals, labelling and proposals, training,
evaluation and calibration, promotion, trends and the voice of the customer."""
