#!/usr/bin/env python3
"""A delaying TCP proxy for bench/run (written for this project).

    latency_proxy.py TARGET_PORT DELAY_MS

Listens on a free port of 127.0.0.1 (printed on stdout, one line, then
flushed) and forwards every connection to 127.0.0.1:TARGET_PORT, holding
every chunk DELAY_MS before passing it on, in each direction: 10 ms makes a
20 ms round trip. Chunks are delayed, not the stream throttled: bytes keep
flowing at full speed once the pipe is full, so a client that pipelines
pays the round trip once and one that waits for each reply pays it every
time, as on a real network. (This kind of machine's kernel has no netem.)
Runs until killed.
"""
import asyncio
import sys


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(1 << 16)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (OSError, asyncio.IncompleteReadError):
        # The other side went away (reset, or already shut down: ENOTCONN
        # from write_eof is not a ConnectionError).
        pass
    finally:
        writer.close()


async def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    target, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            pump(client_r, server_w, delay), pump(server_r, client_w, delay)
        )

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
