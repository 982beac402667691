make test                            # everything: unit, integration, notebooks, browser (what CI runs)
make test-fast                       # the unit tests only (tests/README.md lists the tiers)
make sync-notebooks                  # after editing notebooks/NN_*.py: re-pair the .ipynb files
python docs/snippets/_sync.py --write  # after editing docs/snippets/*: copy them into README.md and docs/
