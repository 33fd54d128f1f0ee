"""GSM8K: grade-school maths word problems; numeric accuracy."""
