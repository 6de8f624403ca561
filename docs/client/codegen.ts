import type { CodegenConfig } from "@graphql-codegen/cli";

// Types for the documents in src/, from the schema Herald serves (kept equal to it by a test).
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.graphql"],
  // Imports with .js extensions, as Node.js ES modules need them.
  emitLegacyCommonJSImports: false,
  generates: { "src/gql/": { preset: "client", config: { enumsAsTypes: true } } },
};
export default config;
