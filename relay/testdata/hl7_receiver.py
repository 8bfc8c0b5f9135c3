"""A downstream MLLP receiver built on Debian's python3-hl7 asyncio server.

Usage: hl7_receiver.py PORTFILE OUTFILE
Binds 127.0.0.1 on a free port, writes the port to PORTFILE, then appends every
message it receives to OUTFILE (one message per line, segments joined by '|CR|'
markers are not needed: the raw str(message) with CR kept, then a newline) and
answers each with python-hl7's own AA.
"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


async def main(portfile, outfile):
    async def on_conn(reader, writer):
        try:
            while not writer.is_closing():
                msg = await reader.readmessage()
                with open(outfile, "a", encoding="utf-8", newline="") as f:
                    f.write(str(msg).replace("\r", "\\r") + "\n")
                writer.writemessage(msg.create_ack())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await start_hl7_server(on_conn, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    import os
    os.rename(portfile + ".tmp", portfile)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
