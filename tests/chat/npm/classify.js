// Prints, for each User-Agent on stdin (one per line), the browser name ua-parser-js finds:
// LibreChat's uaParser middleware bans requests for which it is empty.
const UAParser = require('ua-parser-js');
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(Boolean);
console.log(JSON.stringify(lines.map((ua) => UAParser(ua).browser.name || '')));
