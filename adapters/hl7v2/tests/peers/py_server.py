"""The python `hl7` package's asyncio MLLP server answering AA (stores nothing).

Prints "PORT <n>" once listening and "RECV <MSH-10>" per message; stops when
stdin closes; with --quiet (benchmark) nothing is printed per message.
Usage: python3 py_server.py [--quiet]
"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


QUIET = "--quiet" in sys.argv


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            if not QUIET:
                print("RECV", str(message.segment("MSH")(10)), flush=True)
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await start_hl7_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("PORT", port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
