from cdc.cli import main

if __name__ == "__main__":  # only when run as `python -m cdc`
    main()
