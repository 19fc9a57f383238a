from services.publisher.app import MIGRATIONS, wire
from shared.runtime import serve

if __name__ == "__main__":
    serve("publisher", wire, MIGRATIONS)
