'use strict';
// A small HTTP service: GET /a calls this same service at /b; /b calls DOWNSTREAM_URL
// (if set). Prints "READY <port>" once listening. SIGTERM: leaving heartbeat, flush, exit 0.

const { startLanes } = require('./lanes');

const stop = startLanes(); // before `http` is loaded, so the instrumentation can patch it
const http = require('http');

function call(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const port = server.address().port;
    if (req.url.startsWith('/a')) await call(`http://127.0.0.1:${port}/b`);
    else if (req.url.startsWith('/b') && process.env.DOWNSTREAM_URL) await call(process.env.DOWNSTREAM_URL);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  } catch (err) {
    res.writeHead(502);
    res.end(String(err));
  }
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`READY ${server.address().port}`);
});

process.on('SIGTERM', async () => {
  server.close();
  try {
    await stop();
  } finally {
    process.exit(0);
  }
});
