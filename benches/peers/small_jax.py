"""The control: the same peer (classifier_jax.py) on /work/shared/bench/small.json
(mlp [32], tanh, squared loss, C = 1). Usage: python small_jax.py [--repeats R] ..."""
import sys

from classifier_jax import main

if __name__ == "__main__":
    main(default_spec="/work/shared/bench/small.json", argv=sys.argv[1:])
