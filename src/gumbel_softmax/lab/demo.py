"""Placeholder for `make demo` (replaced by the Concrete figure and then the VAE)."""


def main() -> None:
    print("demo: not yet built")


if __name__ == "__main__":
    main()
