"""`python -m orchestrator`: the same entry point as the `orc` console script."""

from orchestrator.cli.entry import main

if __name__ == "__main__":
    main()
