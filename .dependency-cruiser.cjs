/**
 * The layers, checked in `npm test` (npm run layers): the emulated lab is one lab among
 * others, so neither the suites nor the image recipes they share with it may import it;
 * drivers know nothing of targets or suites. Imports of types only count too: a type from
 * the emulated lab in a suite is the same coupling.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'suites-not-emulated-lab',
      comment: 'A suite runs on any lab: it may use images/ (recipes, contracts) but never targets/emulated/.',
      severity: 'error',
      from: { path: '^suites/' },
      to: { path: '^targets/emulated/' },
    },
    {
      name: 'images-not-emulated-lab',
      comment: 'Image recipes serve every lab: the emulated lab imports them, never the other way round.',
      severity: 'error',
      from: { path: '^images/' },
      to: { path: '^targets/emulated/' },
    },
    {
      name: 'images-not-suites',
      comment: 'A suite and its guest share a contract in images/contracts/, not a suite file.',
      severity: 'error',
      from: { path: '^images/' },
      to: { path: '^suites/' },
    },
    {
      name: 'drivers-not-targets',
      comment: 'Drivers are plain transports and tools: no lab config, no hosts, no emulated lab.',
      severity: 'error',
      from: { path: '^drivers/' },
      to: { path: '^targets/' },
    },
    {
      name: 'drivers-not-suites',
      severity: 'error',
      from: { path: '^drivers/' },
      to: { path: '^suites/' },
    },
    {
      name: 'drivers-not-images',
      severity: 'error',
      from: { path: '^drivers/' },
      to: { path: '^images/' },
    },
    {
      name: 'no-circular',
      comment:
        "No cycle of imports that run (type-only imports excepted: the emulated hosts and hosts.ts, console-serial and console-transport name each other's types).",
      severity: 'error',
      from: {},
      to: { circular: true, dependencyTypesNot: ['type-only'], viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing would hide a broken layer.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|reports/history|test/recorded|test/fixtures)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      exportsFields: ['exports'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
