"""The AI bandmate: shipped models, composing, improvising, the synth and the participant."""
