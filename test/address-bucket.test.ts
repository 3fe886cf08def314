// The bucket per-address limits and lockouts count an address in (src/domain/networks.ts): an
// IPv6 /64 is one bucket, an IPv4-mapped IPv6 address is its IPv4 address.
import { describe, expect, it } from 'vitest';
import { addressBucket } from '../src/domain/networks.ts';

describe('addressBucket', () => {
  it('counts every address of an IPv6 /64 as one, whatever its spelling', () => {
    const bucket = addressBucket('2001:db8:1:2::1');
    expect(bucket).toBe('2001:db8:1:2::/64');
    for (const address of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2::abcd%eth0']) {
      expect(addressBucket(address), address).toBe(bucket);
    }
    expect(addressBucket('2001:db8:1:3::1')).not.toBe(bucket);
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
  });

  it('counts an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(addressBucket('192.0.2.7')).toBe('192.0.2.7');
    expect(addressBucket('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressBucket('::FFFF:c000:0207')).toBe('192.0.2.7');
    expect(addressBucket('192.0.2.8')).not.toBe('192.0.2.7');
  });

  it('gives the same bucket for IPv4 spellings whether or not they are parsed', () => {
    // Canonical spellings skip the parse; the others are parsed, and must land in the same place.
    for (const [address, bucket] of [
      ['10.0.0.1', '10.0.0.1'], ['::FFFF:10.0.0.1', '10.0.0.1'], ['255.255.255.255', '255.255.255.255'],
      ['0.0.0.0', '0.0.0.0'], ['::ffff:0a00:0001', '10.0.0.1'],
    ]) expect(addressBucket(address!), address).toBe(bucket);
    expect(addressBucket('256.0.0.1')).toBe('256.0.0.1'); // no address: its own bucket
    expect(addressBucket('10.0.0.1.5')).toBe('10.0.0.1.5');
  });

  it('keeps a value that is not an address as it is', () => {
    expect(addressBucket('')).toBe('');
    expect(addressBucket('not-an-address')).toBe('not-an-address');
  });
});
