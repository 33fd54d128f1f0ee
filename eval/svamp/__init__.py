"""SVAMP: varied one-step maths word problems; numeric accuracy."""
