"""What a reader sees: result tables (CSV, Markdown, LaTeX) and figures in one style."""
