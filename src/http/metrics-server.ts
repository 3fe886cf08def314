// The metrics listener (METRICS_PORT): GET /metrics and nothing else.
import http from 'node:http';

export function metricsServer(render: () => Promise<string>, contentType: string): http.Server {
  return http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found","error_description":"no such endpoint"}');
      return;
    }
    render().then(
      (text) => res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(text),
      () => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable","error_description":"metrics could not be collected"}'),
    );
  });
}
