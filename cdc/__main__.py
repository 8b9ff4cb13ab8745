from cdc.cli import main

if __name__ == "__main__":  # not when a reader process (spawn) imports it
    main()
