"""Screens: home (programs and runs), run (one run's dashboard) and their modals."""
