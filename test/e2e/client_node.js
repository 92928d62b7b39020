// The node-postgres client test (run by client_node.sh, which installs pg and
// pg-copy-streams and sets NODE_PATH). Connection from PGHOST / PGPORT / PGUSER.
//
// Numbers must come back exact: numeric values are strings in node-postgres, and the
// extension sums in numeric, so 0.1 + 0.2 is "0.3" (JavaScript's own sum would be
// 0.30000000000000004) and a 30-digit decimal survives every step.
'use strict';

const { Client } = require('pg');
const { from: copyFrom } = require('pg-copy-streams');
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');

const DB = 'meter_node_test';
let failures = 0;

function check(name, got, want) {
  if (got === want) {
    console.log(`ok - ${name}`);
  } else {
    failures++;
    console.log(`not ok - ${name}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

// Exact decimal text without trailing fractional zeros ("100.0" → "100"): a comparison
// of decimal strings, never a conversion to float.
function decimal(s) {
  if (typeof s !== 'string') return s;
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

// A decimal string with at most one significant decimal as a BigInt count of tenths
// ("4.2" → 42n): exact arithmetic on the strings, no float anywhere.
function tenths(s) {
  const [whole, frac = ''] = decimal(s).split('.');
  if (frac.length > 1) throw new Error(`not a multiple of 0.1: ${s}`);
  return BigInt(whole) * 10n + BigInt(frac || '0') * (whole.startsWith('-') ? -1n : 1n);
}

// A field of COPY's text format.
function copyField(v) {
  if (v === null || v === undefined) return '\\N';
  return String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

async function usage(client, meter, customer, extra = '') {
  const r = await client.query(
    `SELECT window_start, value FROM meter.usage($1, '2024-05-01Z', '2024-05-02Z', external_customer_id => $2${extra})`,
    [meter, customer]);
  return r.rows;
}

async function main() {
  const admin = new Client({ database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  const client = new Client({ database: DB });
  try {
    await client.connect();
    await client.query('CREATE EXTENSION meter');
    await client.query(`SET meter.tenant_id = 'node_tenant'`);

    // Meters from JavaScript objects: aggregation and filters as JSON text.
    const meters = [
      { id: 'node_sum', event: 'payment', agg: { type: 'SUM', field: 'amount' }, filters: [] },
      { id: 'node_count', event: 'payment', agg: { type: 'COUNT' }, filters: [] },
      { id: 'node_big', event: 'payment', agg: { type: 'SUM', field: 'big' }, filters: [] },
      { id: 'node_eu', event: 'payment', agg: { type: 'SUM', field: 'amount' },
        filters: [{ key: 'region', values: ['eu'] }] },
      { id: 'node_max', event: 'payment', agg: { type: 'MAX', field: 'amount' }, filters: [] },
    ];
    for (const m of meters) {
      const r = await client.query(
        `SELECT id, aggregation::text AS aggregation FROM meter.create_meter($1, $2, $3::meter.aggregation, $4::meter.filters, id => $5)`,
        [m.event, `Node ${m.id}`, JSON.stringify(m.agg), JSON.stringify(m.filters), m.id]);
      check(`create_meter ${m.id}`, r.rows[0].id, m.id);
    }

    // meter.ingest with JSON built from JavaScript objects.
    const big = '123456789012345678901234567890.123456789';
    const events = [
      { event_id: 'n1', event_name: 'payment', external_customer_id: 'cus_js',
        timestamp: '2024-05-01T10:00:00Z', properties: { amount: 0.1, region: 'eu', big } },
      { event_id: 'n2', event_name: 'payment', external_customer_id: 'cus_js',
        timestamp: '2024-05-01T10:05:00Z', properties: { amount: 0.2, region: 'us' } },
    ];
    let r = await client.query('SELECT accepted, duplicates FROM meter.ingest($1::jsonb)', [JSON.stringify(events)]);
    check('ingest: accepted', r.rows[0].accepted, 2);
    check('ingest: duplicates', r.rows[0].duplicates, 0);
    r = await client.query('SELECT accepted, duplicates FROM meter.ingest($1::jsonb)', [JSON.stringify(events)]);
    check('ingest again: every event is a duplicate', r.rows[0].duplicates, 2);
    // A number literal no JavaScript number can hold, sent as JSON text.
    r = await client.query('SELECT accepted FROM meter.ingest($1::jsonb)', [
      '{"event_id":"n3","event_name":"payment","external_customer_id":"cus_js",' +
      '"timestamp":"2024-05-01T10:10:00Z","properties":{"big":0.000000000000000000000000000001}}']);
    check('ingest of a 30-decimal literal', r.rows[0].accepted, 1);

    // COPY ... FROM STDIN through pg-copy-streams: 1,000 events of 0.1.
    const rows = [];
    for (let i = 0; i < 1000; i++) {
      rows.push([`c${i}`, 'payment', 'cus_copy', `2024-05-01 ${String(i % 24).padStart(2, '0')}:30:00+00`,
        JSON.stringify({ amount: '0.1', region: i % 2 ? 'eu' : 'us', note: 'tab\there, back\\slash' })]
        .map(copyField).join('\t') + '\n');
    }
    const copy = client.query(copyFrom(
      'COPY meter.events (id, event_name, external_customer_id, "timestamp", properties) FROM STDIN'));
    await pipeline(Readable.from(rows), copy);
    check('COPY rows', copy.rowCount, 1000);
    r = await client.query(`SELECT properties->>'note' AS note FROM meter.events WHERE id = 'c1'`);
    check('COPY kept tabs and backslashes in the JSON', r.rows[0].note, 'tab\there, back\\slash');

    // Usage comes back as exact decimal strings.
    let u = await usage(client, 'node_sum', 'cus_js');
    check('usage value is a string, not a float', typeof u[0].value, 'string');
    check('0.1 + 0.2 is "0.3"', u[0].value, '0.3');
    check('... not JavaScript\'s float sum', u[0].value === String(0.1 + 0.2), false);
    u = await usage(client, 'node_big', 'cus_js');
    check('a 30-digit decimal survives ingest, rollups and usage', decimal(u[0].value),
      '123456789012345678901234567890.123456789000000000000000000001');
    u = await usage(client, 'node_sum', 'cus_copy');
    check('1,000 x 0.1 through COPY is exactly 100', decimal(u[0].value), '100');
    u = await usage(client, 'node_eu', 'cus_copy');
    check('filtered meter over COPY rows: 500 x 0.1', decimal(u[0].value), '50');
    u = await usage(client, 'node_count', 'cus_copy');
    check('COUNT is exact too', u[0].value, '1000');
    u = await usage(client, 'node_max', 'cus_js');
    check('MAX keeps the decimal', decimal(u[0].value), '0.2');
    u = await usage(client, 'node_sum', 'cus_copy', `, window_size => 'HOUR', timezone => ''`);
    check('HOUR windows with timezone \'\' (UTC): 24 rows', u.length, 24);
    check('... each exact', u.every((w) => decimal(w.value) === '4.2' || decimal(w.value) === '4.1'), true);
    check('... summing to 100 as decimals', u.reduce((s, w) => s + tenths(w.value), 0n), 1000n);

    // Matching from a JavaScript object.
    r = await client.query(
      `SELECT string_agg(id, ',' ORDER BY id) AS ids FROM meter.matching_meters('payment', $1::jsonb)`,
      [JSON.stringify({ region: 'eu', amount: 1 })]);
    check('matching_meters from a JS object', r.rows[0].ids, 'node_big,node_count,node_eu,node_max,node_sum');

    r = await client.query('SELECT count(*)::int AS n FROM meter.verify()');
    check('verify is empty', r.rows[0].n, 0);
  } finally {
    await client.end();
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await admin.end();
  }
}

main().then(
  () => {
    console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
    process.exit(failures ? 1 : 0);
  },
  (err) => {
    console.error('client_node: ' + (err && err.stack ? err.stack : err));
    process.exit(1);
  });
