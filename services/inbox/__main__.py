from services.inbox.app import MIGRATIONS, wire
from shared.runtime import serve

if __name__ == "__main__":
    serve("inbox", wire, MIGRATIONS)
