"""What is measured: datasets normalised to one table, real models made local, and the toy reasoning world with its tiny trained models."""
