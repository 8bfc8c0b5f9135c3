// A baseline MLLP listener on the npm simple-hl7 package: it appends every
// message to a file (no fsync) and answers with simple-hl7's own AA.
// Usage: node server.js PORT OUTFILE
const fs = require('fs');
const hl7 = require('simple-hl7');

const [port, out] = process.argv.slice(2);
const app = hl7.tcp();
app.use(function (req, res, next) {
  fs.appendFileSync(out, req.raw + '\n');
  res.end();
});
app.use(function (err, req, res, next) {
  res.ack.msh.setField(9, 'ACK');
  res.end();
});
app.start(Number(port));
process.on('SIGINT', () => process.exit(0));
