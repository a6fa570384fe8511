import { GetDataByRID, GetDB, SetDB, Log, SendTx } from "@w3bstream/wasm-sdk";
export { alloc } from "@w3bstream/wasm-sdk";

export function start(rid: i32): i32 {
  const reading = GetDataByRID(rid);
  const before = GetDB("sum");
  let sum = I64.parseInt(reading);
  if (before) sum += I64.parseInt(String.UTF8.decode(before));
  SetDB("sum", String.UTF8.encode(sum.toString()));
  Log(`reading ${reading}, sum ${sum}`);
  SendTx(4690, "0x0000000000000000000000000000000000000000", "0", sum.toString(16));
  return 0;
}
