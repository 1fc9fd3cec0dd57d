"""The practical: the hand-written reference backprop, exercises (spec → verified step), worked solutions, the tape graph."""
