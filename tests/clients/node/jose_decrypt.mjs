// The `jose` library decrypting CentralAuth tokens exactly as the official client does:
// jwtDecrypt(token, new TextEncoder().encode(secret)) with jose's defaults (no PBES2).
// Input: JSON {secret, tokens: [...]} in argv[2]; output: the payloads as a JSON array.
import { jwtDecrypt } from 'jose';

const input = JSON.parse(process.argv[2]);
const key = new TextEncoder().encode(input.secret);
const payloads = [];
for (const token of input.tokens) {
  const { payload, protectedHeader } = await jwtDecrypt(token, key);
  payloads.push({ payload, protectedHeader });
}
console.log(JSON.stringify(payloads));
