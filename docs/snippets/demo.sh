make demo                                                       # every notebook, in order, headless, into runs/demo
python -m vqalib report runs/demo --markdown -o docs/results.md  # the run's numbers, as in docs/results.md
