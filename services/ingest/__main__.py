from services.ingest.app import MIGRATIONS, wire
from shared.runtime import serve

if __name__ == "__main__":
    serve("ingest", wire, MIGRATIONS)
