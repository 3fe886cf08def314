// The API behind the gateway in `npm run bench`: answers every request with a short 200, so that
// what is measured is the gateway and the decision, not the API.
import http from 'node:http';

const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' }).end('ok\n');
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => server.close(() => process.exit(0)));
