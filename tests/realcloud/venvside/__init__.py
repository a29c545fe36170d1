"""Code that runs inside the real cloud's virtualenv, not the project's."""
