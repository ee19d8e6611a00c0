"""A small hostile-or-plain HTTP/1.1 server for the generator benchmarks (loopback only).

  server.py endless PORTFILE   every POST gets a 200 whose JSON body never ends
  server.py first PORTFILE     every POST gets a short SSE stream; the time the first
                               request arrived (time.time()) is written to PORTFILE.first
"""
import asyncio, sys, time

mode, portfile = sys.argv[1], sys.argv[2]
first = None
SSE = (b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
       b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
       b'data: [DONE]\n\n')


async def handle(reader, writer):
    global first
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if first is None:
                first = time.time()
                open(portfile + ".first", "w").write(repr(first))
            if mode == "endless":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"choices\":[")
                piece = b" " * 65536
                while True:
                    writer.write(piece)
                    await writer.drain()
            body = SSE
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    open(portfile, "w").write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
