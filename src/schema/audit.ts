// The audit trail over GraphQL: Query.auditEvents for admins (scope users:read), User.auditEvents for the
// account holder's own events (or users:read).
import { type AuditEventInfo, type AuditEventPage, listAuditEvents, MAX_AUDIT_PAGE_SIZE } from '../audit/list.ts';
import { AUDIT_EVENT_TYPES } from '../db/entities.ts';
import { PageInfoType } from './admin.ts';
import { builder } from './builder.ts';
import { isSelf } from './context.ts';
import { UserType } from './user.ts';

const AuditEventTypeEnum = builder.enumType('AuditEventType', {
  description: 'What happened.',
  values: AUDIT_EVENT_TYPES,
});

const AuditEventType = builder.objectRef<AuditEventInfo>('AuditEvent').implement({
  description: 'A security event: a sign-in, a failure, a lockout, a revocation, a change to an account…',
  fields: (t) => ({
    id: t.exposeID('id'),
    type: t.field({ type: AuditEventTypeEnum, resolve: (event) => event.type }),
    userId: t.exposeID('userId', { nullable: true, description: 'The account concerned, when there is one.' }),
    sessionId: t.exposeID('sessionId', { nullable: true }),
    ipAddress: t.exposeString('ipAddress', { nullable: true }),
    userAgent: t.exposeString('userAgent', { nullable: true }),
    detail: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Event-specific facts (a reason, an outcome, who acted); never a secret.',
      resolve: (event) => event.detail,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const AuditEventEdgeType = builder.objectRef<AuditEventPage['edges'][number]>('AuditEventEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: AuditEventType, resolve: (edge) => edge.node }),
  }),
});

const AuditEventConnectionType = builder.objectRef<AuditEventPage>('AuditEventConnection').implement({
  description: 'A page of audit events, newest first.',
  fields: (t) => ({
    edges: t.field({ type: [AuditEventEdgeType], resolve: (page) => page.edges }),
    pageInfo: t.field({ type: PageInfoType, resolve: (page) => page.pageInfo }),
  }),
});

builder.queryField('auditEvents', (t) =>
  t.field({
    type: AuditEventConnectionType,
    description: `Security events of every account, newest first (scope users:read). At most ${MAX_AUDIT_PAGE_SIZE} a page.`,
    authScopes: { scope: 'users:read' },
    args: {
      first: t.arg.int({ required: false, defaultValue: 20 }),
      after: t.arg.string({ required: false }),
      type: t.arg({ type: AuditEventTypeEnum, required: false }),
      userId: t.arg.id({ required: false }),
    },
    resolve: (_root, args, context) =>
      listAuditEvents(context.services, context.call, {
        ...args,
        userId: args.userId === null || args.userId === undefined ? null : String(args.userId),
      }),
  }),
);

builder.objectField(UserType, 'auditEvents', (t) =>
  t.field({
    type: AuditEventConnectionType,
    description: `This account's security events, newest first: the account holder, or with scope users:read. At most ${MAX_AUDIT_PAGE_SIZE} a page.`,
    authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
    args: {
      first: t.arg.int({ required: false, defaultValue: 20 }),
      after: t.arg.string({ required: false }),
    },
    resolve: (user, args, context) => listAuditEvents(context.services, context.call, { ...args, userId: user.id }),
  }),
);
