from services.metrics.app import MIGRATIONS, wire
from shared.runtime import serve

if __name__ == "__main__":
    serve("metrics", wire, MIGRATIONS)
